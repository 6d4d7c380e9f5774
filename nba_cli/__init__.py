"""nba_cli"""

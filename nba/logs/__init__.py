"""nba/logs"""

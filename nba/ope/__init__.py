"""nba/ope"""

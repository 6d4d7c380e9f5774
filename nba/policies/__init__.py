"""nba/policies"""

"""simulators/hcp"""

"""Maintenance scripts run by hand: python tools/<name>.py."""

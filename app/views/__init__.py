"""The application's views: inspect, history (operators), calibrate, train (engineers)."""

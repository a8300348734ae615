"""The local platform runner and test harness: real servers, no Docker needed."""

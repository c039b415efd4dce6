"""The co-located order path: order entry, risk checks, matching, execution reports."""

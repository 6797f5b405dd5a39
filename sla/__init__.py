"""SLA: contracts, service calendars, outages, tickets and their clocks, availability, credits.

An SLA contract promises availability and performance over the scheduled time of a service
calendar; outages that count against it, and the credits they cost, are computed here.
"""

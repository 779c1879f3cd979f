"""Pacing under a quota the gateway announces (`AnnouncedQuota`, `RequestLimiter`, `Pacer`).

Each test drives the limiter on a fake clock and checks what a caller sees:
when requests start, how far under the quota, and when a learned quota is
tried higher or forgotten.
"""

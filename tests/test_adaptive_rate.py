"""The learned rate when no quota is announced (`AdaptiveRate`): each threshold on a fake clock.

These tests pin the numbers the controller's docstring gives (the first cut, the
grace after a cut, the cap on requests in flight, the punished probe), one
behaviour each, so that a change of one constant fails a named test.
"""

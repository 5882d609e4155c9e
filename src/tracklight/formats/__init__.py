"""Local file formats and their flushing (internal).

| module | job |
|---|---|
| ``csv_table`` | ``CSVTable``: a wide CSV that appends rows, rewriting off the training thread for a new key |
| ``tfevents`` | scalar events encoded by hand, and the event file that appends them |
| ``flushing`` | one daemon thread per process flushes every registered writer, at exit and on SIGTERM |
"""

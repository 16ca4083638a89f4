"""Many clips: ``volume convert A B C -o DIR`` (or ``@list.txt``), one output folder per clip,
N conversions at a time on this machine (``clips.py``)."""

"""The words of a propagation's QC trace: row sources, why a front stopped, advisory flags.

Shared by the propagation that writes them (``volume``), the trace file and its schema (``io``)
and the dock; it imports nothing, so every layer may use it without an import circle.
"""

#: ``TraceRow.source``: seed, propagated, rejected (judged and not written) or stopped (a stop
#: marker kept the front out).
SOURCES = ("seed", "propagated", "rejected", "stopped")

#: ``TraceRow.stop_reason`` -> what it means.
STOP_REASONS = {
    "empty": "the mask vanished",
    "low_iou": "predicted IoU under the threshold",
    "low_neighbour_iou": "IoU with the previous slice under the threshold",
    "stop_marker": "a stop marker on this slice",
    "reached_seed": "reached another seed slice",
    "met": "met the front coming from the other side",
    "volume_end": "reached the end of the volume",
    "max_steps": "walked the maximum number of slices",
}

#: Advisory flags: "look here", the mask was kept as it is (see ``volume/leak_check.py``).
FLAGS = {
    "leak": "much of the mask lies outside the seed's intensity range: it may have leaked into a neighbour",
}

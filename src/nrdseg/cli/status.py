"""Exit statuses: the same meaning for every command, and the sentence each help ends with.

A module of its own, importing nothing, so that ``nrdseg.cli`` can name them without
importing what the commands need (torch).
"""

#: Exit statuses: the same meaning for every command (argparse's own usage errors are 2).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3

EXIT_STATUS = (
    "Exit status: 0 done, everything asked for was produced; 1 failed: nothing was "
    "produced or a requested step failed (predict: no input readable; eval: no sample "
    "readable; data check: a bad sample or an error finding; export --verify: a mismatch; "
    "train: training stopped); 2 stopped at a usage or input error (bad arguments, config, "
    "checkpoint or file; the message names it); 3 done in part: some inputs were skipped "
    "as unreadable and are named in the output (predict; eval with on_error: skip)."
)

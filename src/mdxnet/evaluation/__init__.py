"""Evaluation: museval BSS Eval v4 scoring (SiSEC2018 settings), aggregation, baselines, the results report
and auditing of someone else's estimates."""

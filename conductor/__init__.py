"""The conductor daemon: claims jobs from a job board, runs their flows, consumes the jobs."""

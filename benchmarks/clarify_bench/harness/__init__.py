"""The benchmark harness: evaluate any agent (threads or Ray), run files, summary, compare."""

"""The bench stages, one module each; every stage measures ours and its baseline in one run."""

"""Score files (cvkd's and CoViAR's), accuracy metrics, late fusion and paired statistics."""

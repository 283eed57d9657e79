"""Auto-taggers that write caption files: one module per tagger family (wd14 first)."""

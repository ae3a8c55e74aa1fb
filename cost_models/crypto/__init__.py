"""Real cryptography behind `pisim calibrate` and `pisim validate`: garbled circuits, OT extension, BFV."""

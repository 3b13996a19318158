"""ModelForms shared by the admin and the pages (one form per model, cleaned alike in both)."""

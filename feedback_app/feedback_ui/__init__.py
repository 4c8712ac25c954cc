"""Pages and widgets of the rating app (UI only; the library does the work)."""

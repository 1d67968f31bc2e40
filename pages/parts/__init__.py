"""Parts of pages (panels, watchers) shared by several pages; the pages themselves live one folder up."""

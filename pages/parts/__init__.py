"""Parts of pages (forms, result views, panels, watchers, shared helpers); the pages themselves live one folder
up, so that folder shows only the pages."""

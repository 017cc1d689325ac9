"""Statistics of the calls (JSON for programs, SVG charts for people, a public view with small groups
suppressed) and the open data of the funded projects (360Giving field names), all read from monitoring's
application facts and projects."""

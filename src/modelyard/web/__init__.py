"""The web dashboard (``modelyard ui``): server-rendered pages over the registry, rollouts,
pipeline runs, monitoring results and the audit log. No CDN, no script: every page is one
HTML document with inline CSS and SVG."""

"""Run folders: status, listing, resolution of run ids, and the `runlab runs` commands."""

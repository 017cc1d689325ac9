"""Results of a funded project: KPI reports against baseline and target, milestone completion, and the
deadline reminders sent before each milestone and the project deadline."""

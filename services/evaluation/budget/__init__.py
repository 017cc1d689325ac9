"""The call's budget ledger, the allocation of the budget to evaluated applications, the waiting list
and the scorrimento. Tables `evaluation.budgets`, `budget_entries` and `fundings`: written only here."""

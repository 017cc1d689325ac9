"""Intake: calls, companies, partners and delegations, applications, trainings."""

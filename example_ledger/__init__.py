"""A banking ledger on the framework: accounts, deposits, withdrawals, transfers."""

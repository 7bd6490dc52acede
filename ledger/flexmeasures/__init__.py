"""The FlexMeasures connector: mirror a FlexMeasures database's users, accounts, roles and
annotations into the ledger, history from its `audit_log` first (`source` reads it, read-only;
`history` interprets its rows; `mirror` records what they say and what they leave out)."""

"""Rules of the business that need no AWS and no HTTP: the payout status machine. Every layer may
import from here (data access enforces these rules in its condition expressions); this package
imports nothing of the project."""

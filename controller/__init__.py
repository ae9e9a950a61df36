"""Contact-center controller: drives Asterisk (ARI + AMI) or FreeSWITCH (ESL) calls."""

__version__ = "0.1.0"

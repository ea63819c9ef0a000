"""The hits log's line: its columns, how the server writes one, and how the
desktop reads one back. The one owner of that format.
"""


# The fields the fold needs come first and never hold a comma, so it can split
# them off without a CSV parser; the free text from the request comes last.
HIT_COLUMNS = ("hit_id", "time", "tag", "method", "client", "user_agent", "referer")


HITS_GLOB = "hits-*.csv"


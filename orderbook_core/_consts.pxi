# The book core's compiled constants, declared once for every .pyx (each includes
# this file). Their Python names are in orderbook_core/types.py, engine_types.py and
# _pyl3.py; tests/orderbook_core/test_engine_consts.py keeps the two equal and checks
# that no .pyx declares a DEF of its own that belongs here.

DEF NO_ORDER = -9223372036854775807 - 1  # INT64_MIN: the reserved order id (flat_map's EMPTY)
# book sides (types.Side)
DEF BID = 0
DEF ASK = 1
# book delta actions (types.Action) and flags (types.F_LAST, F_SNAPSHOT)
DEF ADD = 1
DEF UPDATE = 2
DEF DELETE = 3
DEF CLEAR = 4
DEF F_LAST = 1
DEF F_SNAPSHOT = 2
# L3 batch operations (_pyl3.OP_*)
DEF OP_ADD = 1
DEF OP_REDUCE = 2
DEF OP_DELETE = 3
DEF OP_EXECUTE = 4
DEF OP_REPLACE = 5
# --- the matching engine (engine_types) ---
DEF SIZE_MAX = 9223372036854775807
DEF SLICES_MAX = 1000  # most slices an iceberg may show: one order, at most that many trades
# event kinds
DEF EV_EXEC = 1
DEF EV_TRADE = 2
DEF EV_BOOK = 3
# order types, time in force, self-trade modes
DEF LIMIT = 0
DEF MARKET = 1
DEF STOP = 2
DEF STOP_LIMIT = 3
DEF GTC = 0
DEF FOK = 2
DEF STP_ALLOW = 0
DEF STP_NEWEST = 1
DEF STP_OLDEST = 2
DEF STP_BOTH = 3
# exec types
DEF ACCEPTED = 1
DEF REJECTED = 2
DEF PARTIAL_FILL = 3
DEF FILL = 4
DEF CANCELLED = 5
DEF REPLACED = 6
DEF TRIGGERED = 7
# reasons
DEF R_NONE = 0
DEF R_UNKNOWN_ORDER = 1
DEF R_DUPLICATE = 2
DEF R_SIZE = 3
DEF R_PRICE = 4
DEF R_TYPE = 5
DEF R_POST_ONLY = 6
DEF R_FOK = 7
DEF R_NO_LIQUIDITY = 8
DEF R_NOT_OWNER = 9
DEF R_DISPLAY = 10
DEF R_STOP_PRICE = 11
DEF R_SELF_TRADE = 12
DEF R_IOC = 13
DEF R_USER = 14
DEF R_MASS = 15
DEF R_NOT_REPLACEABLE = 16
DEF R_SIDE = 17
DEF R_ORDER_ID = 18
DEF R_SIZE_OVERFLOW = 19

/* Errors the proxy itself sends to clients: code, SQLSTATE, message. Codes follow MariaDB/MySQL
 * where a server error means the same thing, and RDS Proxy's 9501 for the borrow timeout. */
#ifndef SL_POOL_ERRORS_H
#define SL_POOL_ERRORS_H

#define SL_ER_ACCESS_DENIED            1045 /* 28000 */
#define SL_ER_UNKNOWN_COM              1047 /* 08S01 */
#define SL_ER_SERVER_SHUTDOWN          1053 /* 08S01 */
#define SL_ER_HANDSHAKE                1043 /* 08S01 Bad handshake */
#define SL_ER_NET_PACKET_TOO_LARGE     1153 /* 08S01 */
#define SL_ER_NET_PACKETS_OUT_OF_ORDER 1156 /* 08S01 */
#define SL_ER_SECURE_TRANSPORT         3159 /* 08004 with require_tls */
#define SL_ER_BORROW_TIMEOUT           9501 /* HY000 */
/* HY000: no backend could be opened and the cause is known */
#define SL_ER_TARGET_UNAVAILABLE 9502
#define SL_ER_NOT_SUPPORTED      1235 /* 42000 ER_NOT_SUPPORTED_YET */
/* The backend connection was lost (failover, fencing, a killed connection): */
#define SL_ER_TRANSACTION_LOST 1213 /* 40001: the open transaction is gone; retry it */
#define SL_ER_OUTCOME_UNKNOWN  1180 /* 08007: COMMIT or a write was in flight; it may have run */
#define SL_ER_STATE_LOST       1927 /* 70100: pinned session state is gone; fresh session now */

#define SL_MSG_BORROW_TIMEOUT "Timed-out waiting to acquire database connection"

#endif

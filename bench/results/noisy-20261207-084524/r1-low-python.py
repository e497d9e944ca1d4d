Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   219.03ms  237.84ms   1.25s    84.05%
    Req/Sec   101.00    133.96   420.00     80.00%
  1007 requests in 10.00s, 215.79KB read
Requests/sec:    100.66
Transfer/sec:     21.57KB

Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   105.92ms  121.09ms 664.01ms   84.92%
    Req/Sec   236.23    364.98     1.09k    81.00%
  2352 requests in 10.00s, 505.83KB read
Requests/sec:    235.12
Transfer/sec:     50.57KB

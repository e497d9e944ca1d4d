Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   226.97ms  242.41ms   1.24s    83.38%
    Req/Sec    98.00    134.82   393.00     81.00%
  977 requests in 10.00s, 209.32KB read
Requests/sec:     97.66
Transfer/sec:     20.92KB

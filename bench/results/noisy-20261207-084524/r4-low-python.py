Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   234.85ms  247.11ms   1.48s    82.31%
    Req/Sec    92.69    129.09   400.00     81.00%
  925 requests in 10.01s, 198.39KB read
Requests/sec:     92.43
Transfer/sec:     19.82KB

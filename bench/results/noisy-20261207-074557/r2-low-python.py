Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   217.04ms  225.90ms   1.30s    82.66%
    Req/Sec    99.09    131.75   393.00     80.00%
  988 requests in 10.00s, 211.71KB read
Requests/sec:     98.76
Transfer/sec:     21.16KB

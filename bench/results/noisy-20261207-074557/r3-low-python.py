Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   210.10ms  215.34ms   1.17s    82.59%
    Req/Sec   101.68    135.54   414.00     80.00%
  1014 requests in 10.00s, 217.16KB read
Requests/sec:    101.37
Transfer/sec:     21.71KB

Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   106.49ms  124.29ms 829.48ms   85.13%
    Req/Sec   243.20    382.42     1.23k    81.00%
  2425 requests in 10.01s, 522.17KB read
Requests/sec:    242.29
Transfer/sec:     52.17KB

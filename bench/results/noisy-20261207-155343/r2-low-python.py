Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   122.11ms  145.12ms 903.81ms   85.13%
    Req/Sec   219.03    336.75     1.07k    80.00%
  2182 requests in 10.01s, 470.41KB read
Requests/sec:    218.04
Transfer/sec:     47.01KB

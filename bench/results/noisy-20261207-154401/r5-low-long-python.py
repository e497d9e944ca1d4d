Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   101.37ms  113.92ms 640.55ms   84.51%
    Req/Sec   239.89    357.34     1.03k    81.00%
  2389 requests in 10.01s, 513.28KB read
Requests/sec:    238.72
Transfer/sec:     51.29KB

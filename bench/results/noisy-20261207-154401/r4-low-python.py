Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   142.32ms  176.49ms   1.19s    84.50%
    Req/Sec   207.22    328.91     0.95k    80.00%
  2064 requests in 10.01s, 445.49KB read
Requests/sec:    206.16
Transfer/sec:     44.50KB

Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   230.60ms  245.21ms   1.34s    82.19%
    Req/Sec    97.21    135.44   404.00     80.00%
  970 requests in 10.00s, 208.24KB read
Requests/sec:     96.95
Transfer/sec:     20.81KB

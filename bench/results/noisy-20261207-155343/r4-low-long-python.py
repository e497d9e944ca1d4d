Running 10s test @ http://127.0.0.1:18205/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   102.24ms  115.16ms 627.07ms   85.02%
    Req/Sec   238.10    359.66     1.05k    82.00%
  2371 requests in 10.00s, 509.99KB read
Requests/sec:    237.00
Transfer/sec:     50.98KB

Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.34ms   11.29ms  97.12ms   69.99%
    Req/Sec   387.44     58.63   510.00     74.00%
  3862 requests in 10.01s, 773.99KB read
Requests/sec:    385.70
Transfer/sec:     77.30KB

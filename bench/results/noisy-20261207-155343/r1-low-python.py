Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   100.39ms  117.42ms 745.10ms   84.97%
    Req/Sec   256.84    400.44     1.19k    82.00%
  2559 requests in 10.01s, 550.78KB read
Requests/sec:    255.71
Transfer/sec:     55.04KB

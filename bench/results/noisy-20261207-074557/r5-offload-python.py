Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    57.26ms  132.46ms   1.86s    97.61%
    Req/Sec   248.28    192.27   414.00     62.50%
  803 requests in 10.01s, 175.62KB read
  Socket errors: connect 0, read 0, write 0, timeout 23
Requests/sec:     80.20
Transfer/sec:     17.54KB

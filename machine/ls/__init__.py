"""What `machine ls` and `inspect -f` show: rows, parallel queries with a deadline, Go templates."""

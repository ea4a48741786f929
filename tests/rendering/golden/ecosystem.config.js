// Managed by o4o-operator for shop; changes are overwritten.
// PM2 runs the API server from the live release (the `current` link); secrets come from the .env file.
module.exports = {
  "apps": [
    {
      "autorestart": true,
      "cwd": "/srv/o4o/team-a.shop/current/apps/api-server",
      "env": {
        "HOST": "127.0.0.1",
        "NODE_ENV": "production",
        "PORT": "3001"
      },
      "exec_mode": "fork",
      "instances": 1,
      "kill_timeout": 10000,
      "max_memory_restart": "512M",
      "name": "o4o-team-a.shop-api",
      "node_args": "--env-file=/srv/o4o/team-a.shop/shared/.env",
      "script": "dist/main.js",
      "time": true
    }
  ]
};

WITH l0 AS (
  SELECT
    t0.*
  FROM (
    WITH ev AS (
      SELECT
        profile_id,
        `timestamp` AS ts,
        message_id AS mid,
        `type`,
        `event`,
        CASE WHEN `type` = 'identify' THEN JSON_EXTRACT_SCALAR(traits, '$.email') END AS x0,
        CASE WHEN `type` = 'identify' THEN JSON_EXTRACT_SCALAR(traits, '$.plan') END AS x1,
        CASE
          WHEN `type` = 'track' AND `event` = 'Order Completed'
          THEN CASE
            WHEN REGEXP_CONTAINS(
              JSON_EXTRACT_SCALAR(properties, '$.total'),
              '^[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?$'
            )
            THEN CAST(JSON_EXTRACT_SCALAR(properties, '$.total') AS FLOAT64)
          END
        END AS x2,
        CASE
          WHEN `type` = 'track' AND `event` = 'Order Completed'
          THEN JSON_EXTRACT_SCALAR(properties, '$.channel')
        END AS x3,
        CASE
          WHEN `type` = 'track' AND `event` = 'Product Viewed'
          THEN JSON_EXTRACT_SCALAR(properties, '$.category')
        END AS x4,
        CASE
          WHEN `type` = 'track' AND `event` = 'Order Completed'
          THEN CASE
            WHEN LOWER(JSON_EXTRACT_SCALAR(properties, '$.gift')) = 'true'
            THEN TRUE
            WHEN LOWER(JSON_EXTRACT_SCALAR(properties, '$.gift')) = 'false'
            THEN FALSE
          END = TRUE
        END AS f5
      FROM events
      WHERE
        NOT profile_id IS NULL AND `timestamp` <= CAST('2026-03-01 12:00:00' AS DATETIME)
    ), agg AS (
      SELECT
        profile_id,
        MAX_BY(
          CASE WHEN `type` = 'identify' AND NOT x0 IS NULL THEN x0 END,
          CASE
            WHEN `type` = 'identify' AND NOT x0 IS NULL
            THEN CONCAT(FORMAT_DATETIME('%F %H:%M:%E6S', ts), mid)
          END
        ) AS a0,
        MAX_BY(
          CASE WHEN `type` = 'identify' AND NOT x1 IS NULL THEN x1 END,
          CASE
            WHEN `type` = 'identify' AND NOT x1 IS NULL
            THEN CONCAT(FORMAT_DATETIME('%F %H:%M:%E6S', ts), mid)
          END
        ) AS a1,
        COUNT(CASE WHEN `type` = 'track' AND `event` = 'Order Completed' THEN 1 END) AS a2,
        SUM(CASE WHEN `type` = 'track' AND `event` = 'Order Completed' THEN x2 END) AS a3,
        MAX(CASE WHEN `type` = 'track' AND `event` = 'Order Completed' THEN x2 END) AS a4,
        MAX(CASE WHEN `type` = 'track' AND `event` = 'Order Completed' THEN ts END) AS a5,
        MIN_BY(
          CASE
            WHEN (
              `type` = 'track' AND `event` = 'Order Completed'
            ) AND NOT x3 IS NULL
            THEN x3
          END,
          CASE
            WHEN (
              `type` = 'track' AND `event` = 'Order Completed'
            ) AND NOT x3 IS NULL
            THEN CONCAT(FORMAT_DATETIME('%F %H:%M:%E6S', ts), mid)
          END
        ) AS a6,
        COUNT(DISTINCT CASE WHEN `type` = 'track' AND `event` = 'Product Viewed' THEN x4 END) AS a7,
        COUNT(
          CASE
            WHEN (
              `type` = 'track' AND `event` = 'Email Opened'
            )
            AND ts > CAST('2026-01-30 12:00:00' AS DATETIME)
            THEN 1
          END
        ) AS a8,
        COUNT(
          CASE WHEN (
            `type` = 'track' AND `event` = 'Order Completed'
          ) AND f5 THEN 1 END
        ) AS a9,
        COUNT(
          CASE
            WHEN (
              `type` = 'track' AND `event` = 'Product Viewed'
            )
            AND ts > CAST('2026-02-22 12:00:00' AS DATETIME)
            THEN 1
          END
        ) AS a10,
        COUNT(CASE WHEN `type` = 'track' AND `event` = 'Order Completed' THEN 1 END) AS a11
      FROM ev
      GROUP BY
        profile_id
    ), mf0 AS (
      SELECT
        profile_id,
        MAX(CASE WHEN r = 1 THEN v END) AS v
      FROM (
        SELECT
          *,
          ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY n DESC, v NULLS LAST) AS r
        FROM (
          SELECT
            profile_id,
            x4 AS v,
            COUNT(*) AS n
          FROM ev
          WHERE
            (
              `type` = 'track' AND `event` = 'Product Viewed'
            ) AND NOT x4 IS NULL
          GROUP BY
            profile_id,
            x4
        ) AS c0
      ) AS c
      GROUP BY
        profile_id
    )
    SELECT
      agg.profile_id,
      agg.a0 AS `email`,
      COALESCE(agg.a1, 'free') AS `plan`,
      agg.a2 AS `orders`,
      agg.a3 AS `lifetime_value`,
      agg.a4 AS `biggest`,
      agg.a5 AS `last_purchase_at`,
      agg.a6 AS `first_channel`,
      mf0.v AS `favorite_category`,
      agg.a7 AS `categories`,
      agg.a8 AS `opens_30d`,
      agg.a9 AS `gifts`,
      agg.a10 AS `__performed_2bc15078ee99`,
      agg.a11 AS `__performed_ff95b132a770`,
      (
        (
          CAST(1772366400.0 AS FLOAT64) - UNIX_MICROS(TIMESTAMP(agg.a5)) / 1000000
        ) / CAST(86400 AS FLOAT64)
      ) AS `days_since_purchase`
    FROM agg
    LEFT JOIN mf0
      ON mf0.profile_id = agg.profile_id
  ) AS t0
), l1 AS (
  SELECT
    l0.*,
    (
      COALESCE((
        `lifetime_value` >= 1000
      ), FALSE)
    ) AS `__segment_vip`,
    (
      COALESCE((
        `orders` >= 2
      ), FALSE)
      AND NOT (
        COALESCE((
          `lifetime_value` >= 1000
        ), FALSE)
      )
    ) AS `__segment_repeat`,
    (
      COALESCE((
        `days_since_purchase` > 60
      ), FALSE)
      AND NOT (
        (
          COALESCE((
            `lifetime_value` >= 1000
          ), FALSE)
        )
        OR (
          COALESCE((
            `orders` >= 2
          ), FALSE)
        )
      )
    ) AS `__segment_lapsed`,
    (
      NOT (
        (
          COALESCE((
            `lifetime_value` >= 1000
          ), FALSE)
        )
        OR (
          COALESCE((
            `orders` >= 2
          ), FALSE)
        )
        OR (
          COALESCE((
            `days_since_purchase` > 60
          ), FALSE)
        )
      )
    ) AS `__segment_prospect`,
    (
      COALESCE(
        (
          (
            `__performed_2bc15078ee99` >= 1
          )
          AND (
            NOT (
              `__performed_ff95b132a770` >= 1
            )
          )
        ),
        FALSE
      )
    ) AS `__segment_browsers`,
    (
      COALESCE((
        `opens_30d` >= 3
      ), FALSE)
    ) AS `__segment_engaged`,
    (
      COALESCE((
        (
          `plan` <> 'free'
        ) AND (
          `email` LIKE '%@%'
        )
      ), FALSE)
    ) AS `__segment_paid`,
    (
      COALESCE((
        `last_purchase_at` >= CAST('2026-01-30 12:00:00' AS DATETIME)
      ), FALSE)
    ) AS `__segment_recent_buyer`,
    (
      COALESCE(
        (
          (
            `favorite_category` = 'shoes'
          ) OR (
            `categories` >= 3
          )
        ),
        FALSE
      )
    ) AS `__segment_shoes`,
    (
      COALESCE((
        (
          `first_channel` IN ('web', '1')
        ) AND (
          `gifts` >= 1
        )
      ), FALSE)
    ) AS `__segment_web_first`
  FROM l0
), l2 AS (
  SELECT
    l1.*,
    (
      COALESCE((
        `biggest` >= 500
      ), FALSE) AND `__segment_recent_buyer`
    ) AS `__segment_big_recent`,
    (
      COALESCE(
        (
          COALESCE(`__segment_vip`, FALSE) AND COALESCE(`__segment_engaged`, FALSE)
        ),
        FALSE
      )
    ) AS `__segment_vip_engaged`
  FROM l1
)
SELECT
  profile_id,
  'vip' AS segment
FROM l2
WHERE
  `__segment_vip`
UNION ALL
SELECT
  profile_id,
  'repeat' AS segment
FROM l2
WHERE
  `__segment_repeat`
UNION ALL
SELECT
  profile_id,
  'lapsed' AS segment
FROM l2
WHERE
  `__segment_lapsed`
UNION ALL
SELECT
  profile_id,
  'prospect' AS segment
FROM l2
WHERE
  `__segment_prospect`
UNION ALL
SELECT
  profile_id,
  'browsers' AS segment
FROM l2
WHERE
  `__segment_browsers`
UNION ALL
SELECT
  profile_id,
  'engaged' AS segment
FROM l2
WHERE
  `__segment_engaged`
UNION ALL
SELECT
  profile_id,
  'paid' AS segment
FROM l2
WHERE
  `__segment_paid`
UNION ALL
SELECT
  profile_id,
  'recent_buyer' AS segment
FROM l2
WHERE
  `__segment_recent_buyer`
UNION ALL
SELECT
  profile_id,
  'shoes' AS segment
FROM l2
WHERE
  `__segment_shoes`
UNION ALL
SELECT
  profile_id,
  'web_first' AS segment
FROM l2
WHERE
  `__segment_web_first`
UNION ALL
SELECT
  profile_id,
  'big_recent' AS segment
FROM l2
WHERE
  `__segment_big_recent`
UNION ALL
SELECT
  profile_id,
  'vip_engaged' AS segment
FROM l2
WHERE
  `__segment_vip_engaged`
